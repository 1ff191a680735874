-- Listings of one lens -- across lists, or twice in one -- merged into one candidate that keeps the
-- best grade (A < B < C), the best-ranked listing's position (lenscat first, then the lists in var
-- order) and every source name. Two listings are the same lens when any of their keys lie within
-- candidate_merge_radius_arcsec: the catalogue position and, as a second key, the position encoded
-- in a DESI- name (published lists centre one lens 1-4" apart, and some catalogue positions lie far
-- from their own DESI- name). Merging is one hop -- each listing joins the best-ranked listing it
-- touches -- which is exact unless three listings chain across more than one radius.

with

candidates as (

    select
        *,
        grade || '|' || lpad(cast(catalog_rank as string), 4, '0') || '|' || candidate_id as merge_rank
    from {{ ref('int_lens_candidates_unioned') }}

),

keys as (

    -- key_id = candidate_id + a 2-character suffix, so that pairs map back without a join
    select
        candidate_id || '#c' as key_id,
        ra,
        dec
    from candidates
    union all
    select
        candidate_id || '#n' as key_id,
        name_ra as ra,
        name_dec as dec
    from candidates
    where name_ra is not null and name_dec is not null

),

key_pairs as (

    {{ zones_pairs('keys', 'keys', 'key_id', 'key_id', var('candidate_merge_radius_arcsec'), exclude_self=true) }}

),

key_pair_candidates as (

    select
        left(l_id, length(l_id) - 2) as l_id,
        left(r_id, length(r_id) - 2) as r_id
    from key_pairs

),

neighbour_pairs as (

    select distinct
        l_id,
        r_id
    from key_pair_candidates
    where l_id is distinct from r_id

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
        count(*) as n_listings,
        -- the best-ranked listing that carries a DESI- name gives the name position
        min_by(candidates.name_ra, candidates.merge_rank) filter (where candidates.name_ra is not null)
            as name_ra,
        min_by(candidates.name_dec, candidates.merge_rank) filter (where candidates.name_ra is not null)
            as name_dec

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
        grouped.name_ra,
        grouped.name_dec,
        {{ angular_sep_arcsec('candidates.ra', 'candidates.dec', 'grouped.name_ra', 'grouped.name_dec') }}
            as name_offset_arcsec,
        candidates.grade,
        grouped.catalogs,
        grouped.n_listings

    from grouped
    inner join candidates on candidates.merge_rank = grouped.group_rank

)

select * from final
