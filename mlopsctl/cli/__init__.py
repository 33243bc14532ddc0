"""The command line: click commands that parse arguments, call one function, pick one view."""
