-- Frame of suite `positives`: one row per positive, plus whether its HEALPix pixel lies inside the
-- sweeps' footprint and is_matched restricted to those (null outside, where no DR10 counterpart
-- could exist: the match rate is only meaningful where DR10 was read at all).  A pixel is inside
-- when it holds at least match_rate_min_pixel_coverage x the median pool count of a pixel.
with

pixel_pool as (

    select
        healpix,
        count(*) as n_pool
    from int_galaxies_filtered
    group by healpix

),

coverage as (

    select $match_rate_min_pixel_coverage * quantile_cont(n_pool, 0.5) as min_pool
    from pixel_pool

),

covered_pixels as (

    select pixel_pool.healpix
    from pixel_pool
    cross join coverage
    where pixel_pool.n_pool >= coverage.min_pool

)

select
    positives.candidate_id,
    positives.tier,
    positives.ra,
    positives.dec,
    positives.split,
    positives.galaxy_id,
    positives.sep_arcsec,
    cast(positives.is_matched as integer) as is_matched,
    covered_pixels.healpix is not null as in_footprint,
    case
        when covered_pixels.healpix is not null then cast(positives.is_matched as integer)
    end as is_matched_in_footprint
from positives
left join covered_pixels on covered_pixels.healpix = positives.healpix
