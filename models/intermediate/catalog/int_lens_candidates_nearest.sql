-- Each Tier-A/B candidate's nearest DR10 source within match_radius_arcsec (zones crossmatch;
-- equals astropy match_coordinates_sky cut at the radius). Kept as its own small table so that the
-- next model's join with the sweeps builds its hash table on these few thousand rows -- inside one
-- query DuckDB cannot estimate the crossmatch's size and built it on the 20M sweep rows instead.

with

candidates as (

    select * from {{ ref('int_lens_candidates_deduplicated') }}
    where grade in ('A', 'B')

),

positions as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('stg_dr10__sweeps') }}

),

nearest as (

    {{ zones_nearest('candidates', 'positions', 'candidate_id', 'galaxy_id', var('match_radius_arcsec')) }}

),

final as (

    select
        l_id as candidate_id,
        r_id as galaxy_id,
        sep_arcsec

    from nearest

)

select * from final
