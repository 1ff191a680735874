-- Frame of suite `negatives`: one row per sampled negative, with two independent checks computed
-- here: whether the galaxy is also a positive's DR10 counterpart, and the distance to the nearest
-- input candidate (every list, every grade) within nearest_candidate_search_arcsec -- an exact
-- haversine over a declination band join, cheap because the negatives are a small table.  The band
-- bounds must be constants for DuckDB to plan a range join (a column from a joined parameter table
-- turns it into a nested loop over negatives x candidates).
with

counterparts as (

    select distinct galaxy_id
    from positives
    where galaxy_id is not null

),

candidates as (

    select
        ra,
        dec
    from int_lens_candidates_unioned

),

pairs as (

    select
        negatives.galaxy_id,
        7200 * degrees(asin(least(1, sqrt(
            power(sin(radians(candidates.dec - negatives.dec) / 2), 2)
            + cos(radians(negatives.dec)) * cos(radians(candidates.dec))
            * power(sin(radians(candidates.ra - negatives.ra) / 2), 2)
        )))) as sep_arcsec
    from negatives
    inner join candidates
        on
            candidates.dec >= negatives.dec - $nearest_candidate_search_arcsec / 3600
            and candidates.dec <= negatives.dec + $nearest_candidate_search_arcsec / 3600

),

nearest as (

    select
        galaxy_id,
        min(sep_arcsec) as nearest_candidate_arcsec
    from pairs
    where sep_arcsec <= $nearest_candidate_search_arcsec
    group by galaxy_id

)

select
    negatives.galaxy_id,
    negatives.type,
    negatives.split,
    negatives.stratum,
    nearest.nearest_candidate_arcsec,
    cast(negatives.is_n2 as integer) as is_n2,
    counterparts.galaxy_id is not null as is_positive_counterpart
from negatives
left join counterparts on counterparts.galaxy_id = negatives.galaxy_id
left join nearest on nearest.galaxy_id = negatives.galaxy_id
