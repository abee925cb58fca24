"""The routing gateway: one API over many model providers, with failover and usage that is never lost."""
