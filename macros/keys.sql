{#- One BIGINT per Tractor source, readable in decimal: release * 1e12 + brickid * 1e6 + objid.
    DR10 has ~660K bricks and far fewer than 1e6 sources per brick, so the packing is injective;
    validate_sweeps() rejects inputs that would break it. -#}
{% macro galaxy_id(release, brickid, objid) -%}
    (cast({{ release }} as bigint) * 1000000000000
        + cast({{ brickid }} as bigint) * 1000000
        + cast({{ objid }} as bigint))
{%- endmacro %}

{#- The sweep files to read: the `sweeps` var, else $STRONGLENS_SWEEPS, else
    $STRONGLENS_HOME/sweeps/*.parquet (STRONGLENS_HOME defaults to ./warehouse). -#}
{% macro sweeps_location() -%}
    {{ return(var('sweeps', env_var('STRONGLENS_SWEEPS', env_var('STRONGLENS_HOME', 'warehouse') ~ '/sweeps/*.parquet'))) }}
{%- endmacro %}
