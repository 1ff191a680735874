-- Pool galaxies that may never be negatives: within exclusion_radius_arcsec of ANY input candidate
-- (every list, every grade, matched or not -- a grade-C candidate may still be a lens), measured
-- from its catalogue position and from the position in its DESI- name, since either may be the
-- lens (int_lens_candidates_nearest tries both). This also removes every positive's counterpart,
-- which lies within match_radius_arcsec of one of the two.

with

galaxies as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('int_galaxies_filtered') }}

),

unioned as (

    select * from {{ ref('int_lens_candidates_unioned') }}

),

candidates as (

    -- key_id = candidate_id + a 2-character suffix ('#c' catalogue, '#n' name position)
    select
        candidate_id || '#c' as key_id,
        ra,
        dec
    from unioned
    union all
    select
        candidate_id || '#n' as key_id,
        name_ra as ra,
        name_dec as dec
    from unioned
    where name_ra is not null and name_dec is not null

),

pairs as (

    -- the small relation goes on the left: the zones macro expands the left side into neighbouring
    -- cells, so this orientation is ~4x faster than galaxies-first
    {{ zones_pairs('candidates', 'galaxies', 'key_id', 'galaxy_id', var('exclusion_radius_arcsec')) }}

),

final as (

    select
        r_id as galaxy_id,
        min(sep_arcsec) as nearest_candidate_arcsec,
        left(min_by(l_id, sep_arcsec), length(min_by(l_id, sep_arcsec)) - 2) as nearest_candidate_id,
        count(distinct left(l_id, length(l_id) - 2)) as n_candidates_within

    from pairs
    group by r_id

)

select * from final
