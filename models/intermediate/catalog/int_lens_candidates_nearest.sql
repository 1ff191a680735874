-- Each Tier-A/B candidate's DR10 counterpart: the nearest DR10 source within match_radius_arcsec
-- (zones crossmatch; equals astropy match_coordinates_sky cut at the radius) of its catalogue
-- position, and -- when its DESI- name position lies more than name_position_tolerance_arcsec
-- away -- also of its name position. Rule: the nearer of the two counterparts (separation from the
-- key that found it) wins; on a tie, or when only one key finds one, that one; matched_position
-- says which key matched. Kept as its own small table so that the next model's join with the
-- sweeps builds its hash table on these few thousand rows -- inside one query DuckDB cannot
-- estimate the crossmatch's size and built it on the 20M sweep rows instead.

with

candidates as (

    select * from {{ ref('int_lens_candidates_deduplicated') }}
    where grade in ('A', 'B')

),

keys as (

    select
        candidate_id || '#catalogue' as key_id,
        candidate_id,
        'catalogue' as matched_position,
        ra,
        dec
    from candidates
    union all
    select
        candidate_id || '#name' as key_id,
        candidate_id,
        'name' as matched_position,
        name_ra as ra,
        name_dec as dec
    from candidates
    where name_offset_arcsec > {{ var('name_position_tolerance_arcsec') }}

),

positions as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('stg_dr10__sweeps') }}

),

nearest as (

    {{ zones_nearest('keys', 'positions', 'key_id', 'galaxy_id', var('match_radius_arcsec')) }}

),

ranked as (

    select
        keys.candidate_id,
        keys.matched_position,
        nearest.r_id as galaxy_id,
        nearest.sep_arcsec,
        row_number() over (
            partition by keys.candidate_id order by nearest.sep_arcsec, keys.matched_position
        ) as key_rank

    from nearest
    inner join keys on keys.key_id = nearest.l_id

),

final as (

    select
        candidate_id,
        galaxy_id,
        sep_arcsec,
        matched_position

    from ranked
    where key_rank = 1

)

select * from final
