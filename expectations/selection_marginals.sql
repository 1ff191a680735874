-- Frame of suite `selection_marginals`: for each operating point and each grid axis, every pair of
-- bins (low, high) with whether completeness moved the way the physics says within the
-- host-bootstrap 95% intervals -- rising with theta_E and depth, falling with worse seeing: a later
-- bin may not lie significantly below (PSF: above) an earlier one -- and, per axis and operating
-- point set by a false-positive rate, whether the last bin is significantly above (PSF: below) the
-- first. The fixed-score comparison points (p > 0.5, ~12% FPR on the default) are held to the
-- monotonicity only: so loose a cut recovers the bright arcs whatever the seeing.
with

fpr_points as (

    select threshold_name
    from selection_thresholds
    where kind = 'fpr'

),

marginals as (

    select
        axis,
        threshold_name,
        bin_centre,
        host_boot95_low as ci_low,
        host_boot95_high as ci_high,
        case when axis = 'psf_fwhm_arcsec' then -1 else 1 end as direction,
        row_number() over (partition by axis, threshold_name order by bin_centre) as bin_rank,
        count(*) over (partition by axis, threshold_name) as n_bins
    from selection_marginals
    where axis in ('theta_e_arcsec', 'psf_fwhm_arcsec', 'depth_mag')

),

pairs as (

    select
        earlier.axis,
        earlier.threshold_name,
        earlier.bin_centre as bin_low,
        later.bin_centre as bin_high,
        'pair' as check_kind,
        case
            when earlier.direction = 1 then later.ci_high >= earlier.ci_low
            else later.ci_low <= earlier.ci_high
        end as is_consistent
    from marginals as earlier
    inner join marginals as later
        on
            later.axis = earlier.axis
            and later.threshold_name = earlier.threshold_name
            and later.bin_rank > earlier.bin_rank

),

ends as (

    select
        first_bin.axis,
        first_bin.threshold_name,
        first_bin.bin_centre as bin_low,
        last_bin.bin_centre as bin_high,
        'ends' as check_kind,
        case
            when first_bin.direction = 1 then last_bin.ci_low > first_bin.ci_high
            else last_bin.ci_high < first_bin.ci_low
        end as is_consistent
    from marginals as first_bin
    inner join marginals as last_bin
        on
            last_bin.axis = first_bin.axis
            and last_bin.threshold_name = first_bin.threshold_name
            and last_bin.bin_rank = last_bin.n_bins
    where
        first_bin.bin_rank = 1
        and first_bin.threshold_name in (select fpr_points.threshold_name from fpr_points)

)

select * from pairs
union all
select * from ends
