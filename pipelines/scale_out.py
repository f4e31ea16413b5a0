"""The month partitions on a dask cluster: each step of a month's run is a task on the cluster's workers.

A code location of its own (it needs ``dagster-dask``, which the default installation does not): the same
``monthly_records`` and ``monthly_ticket_clocks`` assets as ``pipelines.definitions``, in a job whose steps
dagster-dask's ``query_on_dask_worker`` executes on a running dask scheduler. One run per month (the
``dagster/partition`` tag); the runs of a backfill run side by side and share the workers. docs/operations.md
("Past one machine") has the command lines.

Why not ``dagster_dask.dask_executor`` itself (dagster-dask 0.29.27, distributed 2026.8): it submits a step with
the run's record among the task's arguments, and dask walks tuples in task arguments while a partitioned run's
record (its ``partitions_subset``) refuses iteration, so no partitioned run starts; and it names a step's task
``<job>.<step>``, so two runs of one job on one cluster share one task and the second run's step never executes
(dagster-io/dagster#21418). :class:`PartitionRunDaskExecutor` is dagster-dask's executor with the arguments handed
to dask as one opaque object and tasks named by run; the scheduling and the queue are dask's.
"""

import os
from collections.abc import Iterator

import dagster as dg
import dask.distributed
from dagster._core.errors import raise_execution_interrupts
from dagster._utils import iterate_with_context
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker

from assets.monthly_clocks import monthly_ticket_clocks
from assets.partitions import MONTHS, monthly_records
from assets.resources import default_resources


class _StepArguments:
    """What a worker needs to execute one step, passed through dask untouched (dask looks inside tuples)."""

    def __init__(self, *arguments):
        self.arguments = arguments


def _execute_step(dependencies: list, step: _StepArguments) -> list:
    """On a worker: the step's events. ``dependencies`` are the futures of upstream steps, which dask awaits."""
    return query_on_dask_worker(dependencies, *step.arguments)


class PartitionRunDaskExecutor(DaskExecutor):
    """dagster-dask's executor on an existing scheduler, for partitioned runs and runs side by side."""

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError("dask execution needs a persistent Dagster instance")
        run = plan_context.dagster_run
        with dask.distributed.Client(self.cluster_configuration["address"]) as client:
            futures: dict[str, dask.distributed.Future] = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    upstream = [futures[key] for step_input in step.step_inputs for key in step_input.dependency_keys]
                    arguments = _StepArguments(
                        plan_context.reconstructable_job,
                        run,
                        plan_context.run_config,
                        [step.key],
                        plan_context.instance.get_ref(),
                        execution_plan.known_state,
                    )
                    futures[step.key] = client.submit(
                        _execute_step,
                        upstream,
                        arguments,
                        key=f"{run.run_id}.{step.key}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
            completed = dask.distributed.as_completed(list(futures.values()), with_results=True)
            for _, events in iterate_with_context(raise_execution_interrupts, completed):
                yield from events


@dg.executor(
    name="dask_partition_runs",
    requirements=dg.multiple_process_executor_requirements(),
    config_schema={
        "address": dg.Field(
            dg.StringSource,
            is_required=False,
            description="The dask scheduler, e.g. tcp://host:8786; default: DASK_SCHEDULER_ADDRESS.",
        )
    },
)
def partition_run_dask_executor(init_context: dg.InitExecutorContext) -> PartitionRunDaskExecutor:
    # read when a run starts, not at import: a backfill's runs take the address from the environment
    address = init_context.executor_config.get("address") or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if not address:
        raise dg.DagsterInvalidConfigError(
            "no dask scheduler: set execution.config.address or DASK_SCHEDULER_ADDRESS", [], None
        )
    return PartitionRunDaskExecutor("existing", {"address": address})


monthly_clocks_dask = dg.define_asset_job(
    "monthly_clocks_dask",
    selection=dg.AssetSelection.assets(monthly_records, monthly_ticket_clocks),
    partitions_def=MONTHS,
    description="monthly_clocks_job with each step on a dask cluster (run config: execution.config.address).",
    executor_def=partition_run_dask_executor,
)

defs = dg.Definitions(
    assets=[monthly_records, monthly_ticket_clocks], jobs=[monthly_clocks_dask], resources=default_resources()
)


def dask_job() -> dg.JobDefinition:
    """``monthly_clocks_dask`` of ``defs``, for ``dagster.reconstructable`` (each dask worker rebuilds it)."""
    return defs.resolve_job_def("monthly_clocks_dask")
