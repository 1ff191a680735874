-- Pool galaxies that may never be negatives: within exclusion_radius_arcsec of ANY input candidate
-- (every list, every grade, matched or not -- a grade-C candidate may still be a lens). This also
-- removes every positive's counterpart, which lies within match_radius_arcsec of its candidate.

with

galaxies as (

    select galaxy_id, ra, dec from {{ ref('int_galaxies_filtered') }}

),

candidates as (

    select candidate_id, ra, dec from {{ ref('int_lens_candidates_unioned') }}

),

pairs as (

    {{ zones_pairs('galaxies', 'candidates', 'galaxy_id', 'candidate_id', var('exclusion_radius_arcsec')) }}

),

final as (

    select
        l_id as galaxy_id,
        min(sep_arcsec) as nearest_candidate_arcsec,
        arg_min(r_id, sep_arcsec) as nearest_candidate_id,
        count(*) as n_candidates_within

    from pairs
    group by l_id

)

select * from final
