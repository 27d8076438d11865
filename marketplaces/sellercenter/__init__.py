"""SellerCenter (Dafiti and the platform's other operators): the catalog connector (in progress)."""
