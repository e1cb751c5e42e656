"""Views: each module parses a request, calls a service, renders."""
