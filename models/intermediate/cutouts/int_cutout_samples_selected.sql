-- Which samples get cutouts, with everything a cutout source needs -- position, Tractor parameters
-- for the synthetic renderer and the Legacy Survey URL: matched positives plus their strata's
-- negatives (the content-keyed store path is derived in cutout_manifest, which every cutouts
-- build rebuilds, so it always follows the build's own render/fetch vars). The cutouts
-- wing starts here (cutout_manifest projects it, int_cutout_neighbour_pairs reads its centres);
-- it reads the catalogue's intermediates, not its marts, so the DAG flows one way.
-- cutout_max_positives limits the run to a deterministic subset of positives (lowest sha256 of
-- candidate_id and cutout_seed) and, in each of their strata, cutout_negatives_per_positive
-- negatives per chosen positive: a random subset of the stratum's sampled negatives (lowest
-- hash first; with an empty cutout_match_bins) or a weighted random subset whose photometry (e.g.
-- dereddened z magnitude, g-r and r-z) follows the stratum's positives (below); either way split
-- between N1 and N2 as the stratum's sampled negatives are.
-- Colour matching: lens hosts are red massive galaxies, redder than the negatives of their own type,
-- brightness and observing conditions, and a CNN learns that colour instead of arcs (the shortcut
-- audit of the arc-free positives measured core colour g AUC 0.77, z 0.17 against all negatives).
-- Matching colour alone picks faint red galaxies (colour scatter grows as galaxies get fainter), so
-- brightness is matched with it. Each negative gets the weight w = p_pos(bin) / p_neg(bin), the
-- ratio of the shares of its stratum's positives and sampled negatives in its bin (one bin width per
-- sweep column of cutout_match_bins), and the stratum's negatives are
-- taken in order of the Efraimidis-Spirakis key ln(u) / w (u: a uniform hash of galaxy_id and
-- cutout_seed; not sample_hash, which the sampler's lowest-hash-first draw has made non-uniform),
-- which is weighted sampling without replacement: the chosen negatives have the positives' colour
-- distribution wherever the stratum has enough negatives of that colour (in the embedded default
-- the reddest bright bins run short, so the match is partial). N1 and N2 are drawn separately,
-- each by its share of the stratum's sampled negatives, so the hard confusers stay in.

{%- set max_positives = var('cutout_max_positives', none) %}
{%- set match_bins = var('cutout_match_bins', none) or {} %}

with

positives as (

    select * from {{ ref('int_positives_stratified') }}
    where is_matched

),

negatives as (

    select
        galaxy_id,
        n2_category,
        split,
        sampled_for_stratum as stratum,
        sample_hash
    from {{ ref('int_negatives_sampled') }}

),

sweeps as (

    select * from {{ ref('stg_dr10__sweeps') }}

),

sample_ids as (

    select galaxy_id from positives
    union all
    select galaxy_id from negatives

),

sample_sweeps as {{ cte_materialized() }} (

    -- the sweep rows of every positive and sampled negative, read once for the three joins below:
    -- joined to the sweeps view itself, each join scanned all 11.8M rows of the embedded default
    -- and derived their photometry first (31-50 s and up to 4.4 GB; read once: 4.4 s, 1.1 GB)
    select sweeps.*
    from sweeps
    where sweeps.galaxy_id in (select sample_ids.galaxy_id from sample_ids)

),

ranked_positives as (

    select
        *,
        row_number() over (
            order by {{ sha256_unit_interval("candidate_id || '_" ~ var('cutout_seed') ~ "'") }}, candidate_id
        ) as subset_rank

    from positives

),

chosen_positives as (

    select * from ranked_positives
    {%- if max_positives is not none %}
        where subset_rank <= {{ max_positives }}
    {%- endif %}

),

wanted_negatives as (

    select
        stratum,
        count(*) * {{ var('cutout_negatives_per_positive') }} as n_wanted
    from chosen_positives
    group by stratum

),

negative_bins as (

    select
        negatives.*,
        {{ match_bin_key('sweeps', match_bins) }} as match_bin,
        -- a fresh uniform in (0, 1): sample_hash is not one here, the sampler kept the lowest hashes
        (
            {{ sha256_unit_interval("cast(negatives.galaxy_id as varchar) || '_match_" ~ var('cutout_seed') ~ "'") }}
            + 0.5 / 4294967296.0
        ) as match_uniform
    from negatives
    inner join sample_sweeps as sweeps on sweeps.galaxy_id = negatives.galaxy_id

),

positive_bins as (

    select
        positives.stratum,
        {{ match_bin_key('sweeps', match_bins) }} as match_bin
    from positives
    inner join sample_sweeps as sweeps on sweeps.galaxy_id = positives.galaxy_id

),

positive_shares as (

    select
        stratum,
        match_bin,
        count(*) / sum(count(*)) over (partition by stratum) as share
    from positive_bins
    group by stratum, match_bin

),

negative_shares as (

    select
        stratum,
        match_bin,
        count(*) / sum(count(*)) over (partition by stratum) as share
    from negative_bins
    group by stratum, match_bin

),

negative_weights as (

    select
        negative_bins.*,
        coalesce(positive_shares.share, 0) / negative_shares.share as match_weight
    from negative_bins
    inner join negative_shares
        on
            negative_shares.stratum = negative_bins.stratum
            and negative_shares.match_bin = negative_bins.match_bin
    left join positive_shares
        on
            positive_shares.stratum = negative_bins.stratum
            and positive_shares.match_bin = negative_bins.match_bin

),

n2_shares as (

    select
        stratum,
        avg(case when n2_category is not null then 1.0 else 0.0 end) as n2_share
    from negatives
    group by stratum

),

classes as (

    select true as is_n2
    union all
    select false as is_n2

),

class_wanted as (

    -- the stratum's quota split between N1 and N2 as in its sampled negatives, so matching never
    -- trades the hard confusers away for look-alike ordinary galaxies
    select
        wanted_negatives.stratum,
        classes.is_n2,
        case
            when classes.is_n2 then round(wanted_negatives.n_wanted * n2_shares.n2_share)
            else wanted_negatives.n_wanted - round(wanted_negatives.n_wanted * n2_shares.n2_share)
        end as n_wanted
    from wanted_negatives
    inner join n2_shares on n2_shares.stratum = wanted_negatives.stratum
    cross join classes

),

ordered_negatives as (

    select
        negative_weights.galaxy_id,
        negative_weights.n2_category,
        negative_weights.split,
        negative_weights.stratum,
        class_wanted.n_wanted,
        row_number() over (
            partition by negative_weights.stratum, negative_weights.n2_category is not null
            order by
                -- Efraimidis-Spirakis key ln(u) / w, largest first; weight 0 (a bin no positive of
                -- the stratum has) last, in sample_hash order
                case
                    when negative_weights.match_weight > 0
                        then ln(negative_weights.match_uniform) / negative_weights.match_weight
                end desc nulls last,
                negative_weights.sample_hash asc,
                negative_weights.galaxy_id asc
        ) as stratum_rank
    from negative_weights
    inner join class_wanted
        on
            class_wanted.stratum = negative_weights.stratum
            and class_wanted.is_n2 = (negative_weights.n2_category is not null)

),

chosen_negatives as (

    select
        galaxy_id,
        n2_category,
        split,
        stratum
    from ordered_negatives
    {%- if max_positives is not none %}
        where stratum_rank <= n_wanted
    {%- endif %}

),

samples as (

    select
        galaxy_id,
        'positive' as label,
        true as is_lens,
        tier,
        null as n2_category,
        split,
        stratum
    from chosen_positives
    union all
    select
        galaxy_id,
        'negative' as label,
        false as is_lens,
        null as tier,
        n2_category,
        split,
        stratum
    from chosen_negatives

),

final as (

    select
        cast(samples.galaxy_id as varchar) as sample_id,
        samples.galaxy_id,
        samples.label,
        samples.is_lens,
        samples.tier,
        samples.n2_category,
        samples.split,
        samples.stratum,
        sweeps.ra,
        sweeps.dec,
        sweeps.type,
        sweeps.shape_r,
        sweeps.shape_e1,
        sweeps.shape_e2,
        sweeps.sersic,
        {%- for band in ['g', 'r', 'z'] %}
            sweeps.flux_{{ band }},
            sweeps.psfsize_{{ band }},
            sweeps.psfdepth_{{ band }},
        {%- endfor %}
        sweeps.flux_w1,
        sweeps.flux_w2,
        sweeps.nobs_z,
        {{ cutout_url('sweeps.ra', 'sweeps.dec') }} as cutout_url

    from samples
    inner join sample_sweeps as sweeps on sweeps.galaxy_id = samples.galaxy_id

)

select * from final
