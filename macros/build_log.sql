{#-
  Build bookkeeping. on-run-start makes sure the append-only log table (and the check log that
  `stronglens check` appends to) exist; on-run-end appends one row per `dbt build`/`dbt run` with the
  vars used (JSON and md5), the git commit and the DuckLake snapshot `stronglens sql --build N`
  reads back. That snapshot is the one the row's own insert commits (the newest snapshot + 1:
  DuckLake numbers snapshots consecutively and the build holds the catalog alone), so a reader of
  the build sees the build's own row; the outputs are all committed before the hook runs.
-#}

{#- Every var a build depends on; build_runs stores their effective values. -#}
{% macro recorded_var_names() -%}
    {{ return([
        'sweeps', 'validate_sweep_rows', 'wise_vega_to_ab_w1', 'wise_vega_to_ab_w2',
        'match_radius_arcsec', 'candidate_merge_radius_arcsec', 'name_position_tolerance_arcsec',
        'extra_candidates', 'type_bins', 'fallback_type_bin',
        'pool_max_mag_z', 'pool_min_nobs', 'pool_excluded_maskbits', 'exclusion_radius_arcsec',
        'n2_definitions', 'n2_presets', 'n2_share_band',
        'healpix_nside', 'split_seed', 'split_allocations', 'neg_pos_ratio', 'n2_fraction',
        'sampling_seed', 'stratify_by', 'nobs_z_bin_edges', 'psfsize_z_bin_edges', 'mag_z_dered_bin_edges',
        'g_minus_r_bin_edges', 'sampling_topup_max_bin_distance',
        'cutout_source', 'cutout_root', 'cutout_max_positives', 'cutout_seed', 'cutout_url_template',
        'cutout_layer', 'cutout_size', 'cutout_pixscale', 'cutout_bands', 'cutout_concurrency',
        'cutout_rate_limit_per_s', 'cutout_max_attempts', 'cutout_backoff_base_s', 'cutout_coadd_root',
        'cutout_neighbour_radius_arcsec', 'cutout_negatives_per_positive', 'cutout_match_scales',
        'mosaic_per_group', 'gallery_per_group', 'audit_n_boot', 'audit_flag_threshold',
        'finder_weight_tier_a', 'finder_weight_tier_b', 'finder_weight_negative',
        'finder_simulated_lenses', 'finder_simulated_theta_e_arcsec', 'finder_simulated_min_arc_snr',
        'finder_weight_simulated', 'finder_simulated_seed',
        'finder_tier_b_label_smoothing', 'finder_archs', 'finder_crop', 'finder_shift_px',
        'finder_max_epochs', 'finder_patience', 'finder_batch_size', 'finder_lr', 'finder_weight_decay',
        'finder_seed', 'finder_epoch_negatives', 'finder_positive_repeats', 'finder_max_nonfinite_frac', 'finder_device',
        'finder_threads', 'finder_root', 'finder_retrain', 'finder_fpr_levels',
        'finder_min_negatives_above', 'finder_n_boot', 'finder_theta_e_bins', 'finder_calibration_bins',
        'finder_gallery_size', 'finder_min_test_auc',
        'selection_function_enabled', 'realism_score_distributions_enabled', 'injection_theta_e_arcsec',
        'injection_psf_fwhm_arcsec', 'injection_depth_mag', 'injections_per_cell', 'injection_seed',
        'injection_priors_file', 'injection_min_hosts_per_cell', 'injection_max_hosts_per_cell',
        'injection_supersample', 'injection_supersample_threshold', 'injection_compile', 'injection_batch_size',
        'injection_poisson_noise', 'injection_arc_gain_e_per_nmgy', 'injection_annulus_halfwidth_arcsec',
        'injection_device', 'injection_finder_class', 'injection_fpr_targets', 'injection_score_thresholds',
        'injection_arc_snr_edges', 'injection_lensed_mag_edges', 'injection_gallery_per_cell',
        'injection_host_bootstrap_n',
        'realism_probe_max_injections', 'realism_probe_folds', 'realism_probe_n_boot', 'realism_probe_l2',
        'realism_probe_max_auc'
    ]) }}
{%- endmacro %}

{#- The vars `stronglens build` validated (vars_schema.yml; $STRONGLENS_VAR_NAMES), else -- a plain
    `dbt build` -- the list above. -#}
{% macro build_vars_json() -%}
    {%- set values = {} -%}
    {%- set validated = env_var('STRONGLENS_VAR_NAMES', '') -%}
    {%- for name in (fromjson(validated) if validated else recorded_var_names()) -%}
        {%- if name == 'sweeps' -%}
            {%- do values.update({name: sweeps_location()}) -%}
        {%- elif name == 'cutout_root' -%}
            {#- null var: the store stronglens.paths resolved and `stronglens` exported. -#}
            {%- do values.update({name: var(name, none) or env_var('STRONGLENS_CUTOUTS', '') or none}) -%}
        {%- else -%}
            {%- do values.update({name: var(name, none)}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(tojson(values, sort_keys=true)) }}
{%- endmacro %}

{% macro create_build_log() %}
    {{ return(adapter.dispatch('create_build_log', 'stronglens')()) }}
{% endmacro %}

{% macro default__create_build_log() %}
    create table if not exists {{ target.database }}.{{ target.schema }}.build_log (
        build_id integer,
        invocation_id varchar,
        command varchar,
        started_at timestamp with time zone,
        finished_at timestamp with time zone,
        git_commit varchar,
        vars_md5 varchar,
        vars_json varchar,
        snapshot_id bigint,
        status varchar,
        n_nodes integer,
        n_failed integer
    );
    create table if not exists {{ target.database }}.{{ target.schema }}.build_checks (
        build_id integer,
        checked_at timestamp with time zone,
        success boolean,
        summary json
    )
{% endmacro %}

{% macro record_build(results) %}
    {{ return(adapter.dispatch('record_build', 'stronglens')(results)) }}
{% endmacro %}

{% macro default__record_build(results) %}
    {%- if execute and flags.WHICH in ['build', 'run'] -%}
        {%- set failed = results | selectattr('status', 'in', ['error', 'fail', 'runtime error']) | list -%}
        {%- set vars_json = sql_string(build_vars_json()) -%}
        {%- set log = target.database ~ '.' ~ target.schema ~ '.build_log' -%}
        insert into {{ log }}
        select
            coalesce((select max(build_id) from {{ log }}), 0) + 1,
            '{{ invocation_id }}',
            '{{ flags.WHICH }}',
            cast('{{ run_started_at }}' as timestamp with time zone),
            current_timestamp,
            {{ sql_string(env_var('STRONGLENS_GIT_COMMIT', 'unknown')) }},
            md5({{ vars_json }}),
            {{ vars_json }},
            (select max(snapshot_id) + 1 from {{ target.database }}.snapshots()),
            '{{ "failed" if failed else "success" }}',
            {{ results | length }},
            {{ failed | length }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}

{#- Spark: the same log as a Parquet table; Parquet tables have no snapshots, so snapshot_id is
    null and a build's outputs are the tables as they are now (README "Running on a cluster").
    build_checks (written by `stronglens check` on DuckDB) exists empty, so build_runs builds and
    shows every Spark build 'unchecked'; a hook runs one statement, hence run_query for it. -#}
{% macro spark__create_build_log() %}
    {%- if execute -%}
        {%- do run_query("create table if not exists " ~ target.schema ~ ".build_checks ("
            ~ "build_id int, checked_at timestamp, success boolean, summary string) using parquet") -%}
    {%- endif %}
    create table if not exists {{ target.schema }}.build_log (
        build_id int,
        invocation_id string,
        command string,
        started_at timestamp,
        finished_at timestamp,
        git_commit string,
        vars_md5 string,
        vars_json string,
        snapshot_id bigint,
        status string,
        n_nodes int,
        n_failed int
    ) using parquet
{% endmacro %}

{% macro spark__record_build(results) %}
    {%- if execute and flags.WHICH in ['build', 'run'] -%}
        {%- set failed = results | selectattr('status', 'in', ['error', 'fail', 'runtime error']) | list -%}
        {%- set vars_json = build_vars_json() | replace("\\", "\\\\") | replace("'", "\\'") -%}
        {%- set log = target.schema ~ '.build_log' -%}
        insert into {{ log }}
        select
            cast(coalesce((select max(build_id) from {{ log }}), 0) + 1 as int),
            '{{ invocation_id }}',
            '{{ flags.WHICH }}',
            cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp),
            current_timestamp(),
            '{{ env_var("STRONGLENS_GIT_COMMIT", "unknown") }}',
            md5('{{ vars_json }}'),
            '{{ vars_json }}',
            cast(null as bigint),
            '{{ "failed" if failed else "success" }}',
            {{ results | length }},
            {{ failed | length }}
    {%- else -%}
        select 1
    {%- endif -%}
{% endmacro %}
