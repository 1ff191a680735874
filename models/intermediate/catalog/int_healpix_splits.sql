-- The split of every HEALPix pixel (nside healpix_nside, NESTED) that holds a pool galaxy or a
-- positive. Hashing per pixel, not per galaxy, costs tens of thousands of sha256 calls instead of
-- hundreds of millions, and positives and negatives in one pixel can never land in two splits.

with

pool_pixels as (

    select distinct healpix from {{ ref('int_galaxies_filtered') }}

),

positive_pixels as (

    select distinct healpix from {{ ref('int_lens_candidates_matched') }}

),

pixels as (

    select healpix from pool_pixels
    union
    select healpix from positive_pixels

),

final as (

    select
        healpix,
        {{ assign_split('healpix', var('split_seed'), var('split_allocations')) }} as split

    from pixels

)

select * from final
