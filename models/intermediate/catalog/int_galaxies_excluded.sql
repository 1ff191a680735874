-- Pool galaxies that may never be negatives: within exclusion_radius_arcsec of ANY input candidate
-- (every list, every grade, matched or not -- a grade-C candidate may still be a lens). This also
-- removes every positive's counterpart, which lies within match_radius_arcsec of its candidate.

with

galaxies as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('int_galaxies_filtered') }}

),

candidates as (

    select
        candidate_id,
        ra,
        dec
    from {{ ref('int_lens_candidates_unioned') }}

),

pairs as (

    -- the small relation goes on the left: the zones macro expands the left side into neighbouring
    -- cells, so this orientation is ~4x faster than galaxies-first
    {{ zones_pairs('candidates', 'galaxies', 'candidate_id', 'galaxy_id', var('exclusion_radius_arcsec')) }}

),

final as (

    select
        r_id as galaxy_id,
        min(sep_arcsec) as nearest_candidate_arcsec,
        min_by(l_id, sep_arcsec) as nearest_candidate_id,
        count(*) as n_candidates_within

    from pairs
    group by r_id

)

select * from final
