"""Generated per-ISA syscall number tables (number -> name)."""
