-- merger_proxy: pool galaxies with another DR10 galaxy (any non-point-source type) within the
-- active N2 preset's merger_proxy radius_arcsec whose z-band flux is comparable (fainter / brighter
-- >= its min_flux_ratio). A self-crossmatch with the zones macro; empty when the preset does not
-- use merger_proxy.

{%- set preset = n2_preset() %}
{%- set merger = preset.get('merger_proxy', {'radius_arcsec': 1.0, 'min_flux_ratio': 1.0}) %}
{%- set ratio = merger['min_flux_ratio'] %}

with

galaxies as (

    select
        galaxy_id,
        ra,
        dec,
        flux_z
    from {{ ref('int_galaxies_filtered') }}

),

neighbours as (

    -- Only sources bright enough to be "comparable" to some pool galaxy can matter.
    select
        galaxy_id,
        ra,
        dec,
        flux_z
    from {{ ref('stg_dr10__sweeps') }}
    where type not in ('PSF', 'DUP')
        and flux_z >= {{ ratio }} * power(10, (22.5 - {{ var('pool_max_mag_z') }}) / 2.5)
        * mw_transmission_z

),

pairs as (

    {{ zones_pairs('galaxies', 'neighbours', 'galaxy_id', 'galaxy_id',
                   merger['radius_arcsec'], exclude_self=true) }}

),

comparable as (

    select
        pairs.l_id as galaxy_id,
        pairs.r_id as neighbour_id,
        pairs.sep_arcsec,
        least(galaxies.flux_z, neighbours.flux_z) / greatest(galaxies.flux_z, neighbours.flux_z)
            as flux_ratio

    from pairs
    inner join galaxies on galaxies.galaxy_id = pairs.l_id
    inner join neighbours on neighbours.galaxy_id = pairs.r_id
    where least(galaxies.flux_z, neighbours.flux_z)
        >= {{ ratio }} * greatest(galaxies.flux_z, neighbours.flux_z)
        and {{ 'true' if 'merger_proxy' in preset['priority'] else 'false' }}

),

final as (

    select
        galaxy_id,
        min_by(neighbour_id, sep_arcsec) as merger_neighbour_id,
        min(sep_arcsec) as merger_neighbour_arcsec,
        count(*) as n_merger_neighbours

    from comparable
    group by galaxy_id

)

select * from final
