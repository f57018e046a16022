"""kb: knowledge-base search for customer-service and IT-support teams."""

__version__ = "0.1.0"
