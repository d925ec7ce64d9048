"""Forms of the admin pages: syntax and choices only, no queries."""
