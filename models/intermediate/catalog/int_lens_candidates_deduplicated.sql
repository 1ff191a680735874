-- Candidates closer than match_radius_arcsec are one object listed twice (often across papers):
-- merge them into one candidate that keeps the best grade (A < B < C) and every source name.
-- Merging is one hop -- each candidate joins the best-ranked candidate within the radius -- which is
-- exact unless three listings chain across more than one radius, vanishingly rare at 1".

with

candidates as (

    select
        *,
        grade || '|' || lpad(cast(catalog_rank as string), 4, '0') || '|' || candidate_id as merge_rank
    from {{ ref('int_lens_candidates_unioned') }}

),

neighbour_pairs as (

    {{ zones_pairs('candidates', 'candidates', 'candidate_id', 'candidate_id',
                   var('match_radius_arcsec'), exclude_self=true) }}

),

ranked_neighbours as (

    select
        neighbour_pairs.l_id as candidate_id,
        candidates.merge_rank
    from neighbour_pairs
    inner join candidates on candidates.candidate_id = neighbour_pairs.r_id

),

representatives as (

    select
        candidates.candidate_id,
        least(candidates.merge_rank, coalesce(min(ranked_neighbours.merge_rank), candidates.merge_rank))
            as group_rank
    from candidates
    left join ranked_neighbours on ranked_neighbours.candidate_id = candidates.candidate_id
    group by candidates.candidate_id, candidates.merge_rank

),

grouped as (

    select
        representatives.group_rank,
        {{ string_agg_distinct('candidates.name', ' | ') }} as merged_names,
        {{ string_agg_distinct('candidates.catalog', ' | ') }} as catalogs,
        count(*) as n_listings

    from candidates
    inner join representatives on representatives.candidate_id = candidates.candidate_id
    group by representatives.group_rank

),

final as (

    select
        candidates.candidate_id,
        grouped.merged_names as name,
        candidates.ra,
        candidates.dec,
        candidates.grade,
        grouped.catalogs,
        grouped.n_listings

    from grouped
    inner join candidates on candidates.merge_rank = grouped.group_rank

)

select * from final
