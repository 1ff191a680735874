-- Catalogue sources around every cutout centre (int_cutout_neighbour_pairs), with the shape and
-- flux columns the synthetic renderer draws them from.

with

centres as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('int_cutout_samples_selected') }}

),

pairs as (

    select * from {{ ref('int_cutout_neighbour_pairs') }}

),

sweeps as (

    select * from {{ ref('stg_dr10__sweeps') }}

),

final as (

    select
        pairs.galaxy_id,
        centres.ra as ra0,
        centres.dec as dec0,
        sweeps.galaxy_id as neighbour_id,
        sweeps.ra,
        sweeps.dec,
        sweeps.type,
        sweeps.shape_r,
        sweeps.shape_e1,
        sweeps.shape_e2,
        sweeps.sersic,
        sweeps.flux_g,
        sweeps.flux_r,
        sweeps.flux_z

    from pairs
    inner join centres on centres.galaxy_id = pairs.galaxy_id
    inner join sweeps on sweeps.galaxy_id = pairs.neighbour_id

)

select * from final
order by galaxy_id, neighbour_id
