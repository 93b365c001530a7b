"""Alerts: rules' notification semantics (rules.py), history/outbox (store.py),
Kafka publisher (publisher.py), the ``brand_alerts`` asset and ``alerts tail``."""
from reputation_pipeline.alerts.assets import alert_outbox_drained, brand_alerts
from reputation_pipeline.alerts.cli import register_cli
from reputation_pipeline.alerts.publisher import AlertPublisherResource, alert_publisher_from_env

alerts_assets = [brand_alerts]
alerts_checks = [alert_outbox_drained]
alerts_resources = {"alert_publisher": alert_publisher_from_env()}

__all__ = ["alerts_assets", "alerts_checks", "alerts_resources", "register_cli", "AlertPublisherResource"]
