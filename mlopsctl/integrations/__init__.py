"""DVC and git, behind small functions. Imported only on the apply/init paths."""
