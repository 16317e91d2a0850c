"""The Flask front end: a search page and a JSON API."""
