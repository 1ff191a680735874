-- Frame of suite `split_shares`: the share of sky pixels (every HEALPix pixel holding a pool galaxy
-- or a positive) in each split against its allocation, with the absolute deviation in binomial
-- standard deviations.
with

allocations as (

    select
        unnest($split_names) as split,
        unnest($split_fractions) as allocation

),

pixels as (

    select
        split,
        count(*) as n_pixels
    from int_healpix_splits
    group by split

),

total as (

    select sum(n_pixels) as n_total from pixels

)

select
    total.n_total,
    allocations.allocation,
    coalesce(allocations.split, pixels.split) as split,
    coalesce(pixels.n_pixels, 0) as n_pixels,
    coalesce(pixels.n_pixels, 0) / total.n_total as share,
    abs(coalesce(pixels.n_pixels, 0) / total.n_total - allocations.allocation)
    / sqrt(allocations.allocation * (1 - allocations.allocation) / total.n_total) as abs_deviation_sigma
from allocations
full outer join pixels on pixels.split = allocations.split
cross join total
