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

{#- Where cutouts are stored: the `cutout_root` var, else $STRONGLENS_CUTOUTS, else
    $STRONGLENS_HOME/cutouts. -#}
{% macro cutout_root_location() -%}
    {{ return(var('cutout_root', none) or env_var('STRONGLENS_CUTOUTS', env_var('STRONGLENS_HOME', 'warehouse') ~ '/cutouts')) }}
{%- endmacro %}

{#- The Legacy Survey cutout URL of a position, from the cutout_url_template var. -#}
{% macro cutout_url(ra, dec) -%}
    {%- set template = var('cutout_url_template')
        | replace('{layer}', var('cutout_layer'))
        | replace('{pixscale}', var('cutout_pixscale') | string)
        | replace('{bands}', var('cutout_bands'))
        | replace('{size}', var('cutout_size') | string) -%}
    {%- set parts = template.split('{ra}') -%}
    {%- set tail = parts[1].split('{dec}') -%}
    '{{ parts[0] }}' || cast(round({{ ra }}, 6) as string) || '{{ tail[0] }}'
        || cast(round({{ dec }}, 6) as string) || '{{ tail[1] }}'
{%- endmacro %}
