"""The GitRepository controller and what it needs: the bare git cache, ref listing and
resolution, credentials, and the URL policy. It meets the Sync controller only through
the bus's artifact."""
