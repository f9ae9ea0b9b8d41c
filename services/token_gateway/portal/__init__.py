"""The customer portal on the customer listener (``/portal/``): customer accounts, their sign-in,
and the pages where a customer sees its own models, keys and analytics (docs/customer/portal.md)."""
