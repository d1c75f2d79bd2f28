"""Plain data: orders, requests, their JSON schemas and the errors the service speaks in."""
