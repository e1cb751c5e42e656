"""Domain logic. Services take explicit arguments (the acting user included), use
the database session, and know nothing of the HTTP request."""
