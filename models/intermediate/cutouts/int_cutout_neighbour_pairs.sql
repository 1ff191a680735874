-- Which catalogue sources lie within cutout_neighbour_radius_arcsec of each cutout centre (zones
-- crossmatch). A small table of its own, like int_lens_candidates_nearest: joined back to the sweeps
-- inside one query, DuckDB cannot size the crossmatch and builds its hash table on the sweeps.
-- DUP sources carry no flux of their own and are left out.

with

centres as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('int_cutout_samples_selected') }}

),

positions as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('stg_dr10__sweeps') }}
    where type != 'DUP'

),

pairs as (

    {{ zones_pairs('centres', 'positions', 'galaxy_id', 'galaxy_id',
                   var('cutout_neighbour_radius_arcsec'), exclude_self=true) }}

),

final as (

    select
        l_id as galaxy_id,
        r_id as neighbour_id,
        sep_arcsec

    from pairs

)

select * from final
