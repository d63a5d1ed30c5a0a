"""Grafana dashboards for estate-gateway, generated from code (grafana-foundation-sdk) over InfluxQL.

Edit the boards in `dashboards/boards/`, then regenerate the committed JSON:
`.venv/bin/python -m dashboards.generate`. A test fails when the JSON and the code disagree.
"""
