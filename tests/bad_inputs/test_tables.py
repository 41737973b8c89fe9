"""Bad input to ``rsseg tables`` (a results folder that holds no runs, a table that names unknown rows ...).

The command's cases join the corpus here, in the same form as the other commands': ``Case(id, argv, expect)``
run through ``check_refusal``. The world folder (conftest.py) is where their inputs go.
"""
