"""Lightning callbacks of rsseg."""
