"""Magalu (Magazine Luiza) Open API: the catalog connector (see ``_http`` for the basics)."""
