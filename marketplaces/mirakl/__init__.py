"""Mirakl seller API (Carrefour Brasil's marketplace): the catalog connector (in progress).

``_http`` holds what every Mirakl call needs (shop key, ``shop_id``, error mapping, CSV imports,
call frequencies); the connector and the order channel build on it.
"""
