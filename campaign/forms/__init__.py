"""Flask-WTF forms: syntax and choices only; uniqueness is the database's job."""
