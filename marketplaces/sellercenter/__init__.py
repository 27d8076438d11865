"""SellerCenter (Dafiti and the platform's other operators): the order channel and its stand-in desk.

Placeholder for the catalog connector's package module (branch ``dafiti``): take that branch's
file at merge.
"""
