"""How every rsseg command runs: the one error path (app), its command line as typed (cmdline), what it prints
(console), atomic files, preflight checks, run records and the names of modules that moved. console and files
import nothing of rsseg; the rest errors and config.
"""
