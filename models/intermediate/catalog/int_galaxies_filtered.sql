-- The negative-pool candidates before exclusions: galaxies of the sampled types that pass the
-- quality cuts (vars type_bins, pool_max_mag_z, pool_min_nobs, pool_excluded_maskbits), with the
-- HEALPix pixel that decides their split. This is the one wide scan of the sweeps for the pool.

with

sweeps as (

    select * from {{ ref('stg_dr10__sweeps') }}

),

filtered as (

    select
        galaxy_id,
        release,
        brickid,
        objid,
        ra,
        dec,
        type,
        flux_r,
        flux_z,
        mag_r_dered,
        mag_z_dered,
        g_minus_r,
        shape_r,
        sersic,
        ellipticity,
        w1_minus_w2_vega,
        mag_w2_dered - {{ var('wise_vega_to_ab_w2') }} as mag_w2_vega,
        snr_w1,
        snr_w2,
        nobs_z,
        psfsize_z

    from sweeps
    where type in ({{ sql_string_list(var('type_bins')) }})
        and mag_z_dered < {{ var('pool_max_mag_z') }}
        and nobs_g >= {{ var('pool_min_nobs') }}
        and nobs_r >= {{ var('pool_min_nobs') }}
        and nobs_z >= {{ var('pool_min_nobs') }}
        and {{ maskbits_clear('maskbits', var('pool_excluded_maskbits')) }}

),

final as (

    select
        *,
        {{ healpix_nest('ra', 'dec', var('healpix_nside')) }} as healpix

    from filtered

)

select * from final
