-- Frame of suite `injection_coverage`: per grid cell, whether its host counts, planned injections
-- and reason agree (a measurable cell has hosts and injections_per_cell injections; an unmeasurable
-- one has neither and says why).
select
    cell_id,
    is_measurable,
    n_native_hosts,
    n_degraded_hosts,
    n_injections_planned,
    unmeasurable_reason,
    case
        when is_measurable
            then
                n_native_hosts + n_degraded_hosts >= 1
                and n_injections_planned = $injections_per_cell
                and unmeasurable_reason is null
        else
            n_native_hosts + n_degraded_hosts = 0
            and n_injections_planned = 0
            and unmeasurable_reason is not null
    end as is_consistent,
    n_degraded_hosts <= $injection_min_hosts_per_cell as degraded_within_fill
from injection_coverage
