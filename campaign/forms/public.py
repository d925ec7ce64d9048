"""Forms of the public pages: syntax and choices only, no queries."""
