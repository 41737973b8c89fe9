"""Paper tables from results.json: records (reading runs), groups, columns, marks, bootstrap intervals, build, render
(markdown, CSV, LaTeX), figures and the command. May import every package but training and the API.
"""
