"""Declarative automation for everything downstream of the raw lake.

``AutomationCondition.eager()`` only looks at the latest time partition; a late
post lands in a past hour, and that hour's scores, marts and alerts must be
recomputed too. So the condition is eager *without* the latest-window limit:
any hour whose upstream partitions were updated (and none is still running)
is requested. Backfills of history go through the jobs explicitly."""
import dagster as dg

ANY_HOUR_EAGER = dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())

automation_sensor = dg.AutomationConditionSensorDefinition(
    "downstream_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Scores, dbt models, published marts and alerts of every hour whose upstream data changed.",
)


def with_automation(assets: list) -> list:
    """Give every executable partitioned asset downstream of raw_posts the condition."""
    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key == dg.AssetKey("raw_posts") or spec.partitions_def is None:
            return spec
        return spec.replace_attributes(automation_condition=ANY_HOUR_EAGER)

    return list(dg.map_asset_specs(apply, assets))
