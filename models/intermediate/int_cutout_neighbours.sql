-- Catalogue sources around every cutout centre (within cutout_neighbour_radius_arcsec), with the
-- shape and flux columns the synthetic renderer draws them from. DUP sources carry no flux of
-- their own and are left out.

with

centres as (

    select
        galaxy_id,
        ra,
        dec
    from {{ ref('cutout_manifest') }}

),

sweeps as (

    select * from {{ ref('stg_dr10__sweeps') }}
    where type != 'DUP'

),

pairs as (

    {{ zones_pairs('centres', 'sweeps', 'galaxy_id', 'galaxy_id',
                   var('cutout_neighbour_radius_arcsec'), exclude_self=true) }}

),

final as (

    select
        pairs.l_id as galaxy_id,
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
    inner join centres on centres.galaxy_id = pairs.l_id
    inner join sweeps on sweeps.galaxy_id = pairs.r_id

)

select * from final
order by galaxy_id, neighbour_id
