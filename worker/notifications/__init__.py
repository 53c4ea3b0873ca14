"""Webhook notifications for teams without Prometheus: what happened, as a Slack or JSON body, signed."""
