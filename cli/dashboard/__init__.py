"""The operations dashboard `tradepost serve` shows at ``/``, signed in with the config's token.

Pages: overview (``tradepost status``), listings with errors (retry queues a SKU for the sync
worker), the review queue (approve or reject held orders, as ``tradepost orders`` does), the log.
"""

from cli.dashboard._routes import dashboard_app

__all__ = ["dashboard_app"]
