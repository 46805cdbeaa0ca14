"""The customers' pages: Settings → Network → RingPool Auto-Scaling, the pool list and pool health."""
