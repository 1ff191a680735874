-- Per grid cell: native and degraded hosts, the injections planned, and whether the cell can be
-- measured at all (no host with seeing and depth at least as good as the cell's: not measurable).

with

grid as (

    select * from {{ ref('injection_grid') }}

),

slots as (

    select * from {{ ref('injection_host_slots') }}

),

hosts_per_cell as (

    select
        cell_id,
        count(*) filter (where not degraded) as n_native_hosts,
        count(*) filter (where degraded) as n_degraded_hosts
    from slots
    group by cell_id

),

final as (

    select
        grid.cell_id,
        grid.theta_e_arcsec,
        grid.psf_fwhm_arcsec,
        grid.depth_mag,
        coalesce(hosts_per_cell.n_native_hosts, 0) as n_native_hosts,
        coalesce(hosts_per_cell.n_degraded_hosts, 0) as n_degraded_hosts,
        hosts_per_cell.cell_id is not null as is_measurable,
        case when hosts_per_cell.cell_id is not null then grid.n_injections else 0 end as n_injections_planned,
        case
            when hosts_per_cell.cell_id is null
                then 'no test-split host has seeing and depth at least as good as the cell'
        end as unmeasurable_reason

    from grid
    left join hosts_per_cell on hosts_per_cell.cell_id = grid.cell_id

)

select * from final
order by cell_id
