{{ config(pre_hook="{{ validate_sweeps(sweeps_location()) }}") }}
-- depends_on: {{ ref('sweep_required_columns') }}

with

source as (

    select * from {{ sweeps_relation(source('dr10', 'sweeps')) }}

),

renamed as (

    select
        {{ galaxy_id('release', 'brickid', 'objid') }} as galaxy_id,
        cast(release as integer) as release,
        cast(brickid as integer) as brickid,
        cast(objid as integer) as objid,
        trim(brickname) as brickname,
        trim(type) as type,
        cast(ra as double) as ra,
        cast(dec as double) as dec,
        cast(ebv as double) as ebv,
        {%- for band in ['g', 'r', 'z', 'w1', 'w2'] %}
            cast(flux_{{ band }} as double) as flux_{{ band }},
            cast(flux_ivar_{{ band }} as double) as flux_ivar_{{ band }},
            cast(mw_transmission_{{ band }} as double) as mw_transmission_{{ band }},
        {%- endfor %}
        {%- for band in ['g', 'r', 'z'] %}
            cast(nobs_{{ band }} as integer) as nobs_{{ band }},
            cast(psfsize_{{ band }} as double) as psfsize_{{ band }},
            cast(psfdepth_{{ band }} as double) as psfdepth_{{ band }},
            cast(galdepth_{{ band }} as double) as galdepth_{{ band }},
            cast(fracflux_{{ band }} as double) as fracflux_{{ band }},
        {%- endfor %}
        cast(shape_r as double) as shape_r,
        cast(shape_e1 as double) as shape_e1,
        cast(shape_e2 as double) as shape_e2,
        cast(sersic as double) as sersic,
        cast(maskbits as integer) as maskbits,
        cast(fitbits as integer) as fitbits,
        filename as source_file

    from source

),

derived as (

    select
        *,
        {%- for band in ['g', 'r', 'z', 'w1', 'w2'] %}
            {{ nanomaggies_to_mag('flux_' ~ band) }} as mag_{{ band }},
            {{ dereddened_mag(band) }} as mag_{{ band }}_dered,
        {%- endfor %}
        flux_w1 * sqrt(greatest(flux_ivar_w1, 0)) as snr_w1,
        flux_w2 * sqrt(greatest(flux_ivar_w2, 0)) as snr_w2,
        sqrt(shape_e1 * shape_e1 + shape_e2 * shape_e2) as ellipticity

    from renamed

),

final as (

    select
        *,
        mag_g_dered - mag_r_dered as g_minus_r,
        mag_r_dered - mag_z_dered as r_minus_z,
        mag_w1_dered - mag_w2_dered as w1_minus_w2_ab,
        (mag_w1_dered - {{ var('wise_vega_to_ab_w1') }}) - (mag_w2_dered - {{ var('wise_vega_to_ab_w2') }})
            as w1_minus_w2_vega,
        (1 - ellipticity) / (1 + ellipticity) as axis_ratio,
        degrees(0.5 * atan2(shape_e2, shape_e1)) as position_angle_deg

    from derived

)

select * from final
