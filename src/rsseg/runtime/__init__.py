"""How every rsseg command runs: the one error path (app), its command line as typed (cmdline), what it prints
(console), what it draws (plots), atomic files, preflight checks, run records and the names of modules that moved.
console and files import nothing of rsseg, plots only those two; the rest errors and config.
"""
