"""Views: values in, text out. Renderers never decide anything."""
