{#-
  Days after a transaction's date until its fraud label is final: the processor reports every
  chargeback within 60 calendar days, so the label matures at transaction_date + 61 days, 00:00.
  HEADWATER_LABEL_MATURITY_DAYS changes the promise for a world whose chargebacks arrive faster
  (the loop simulation uses one within two weeks). Every model that relies on the promise reads
  it from here: fraud_labels, merchant_daily_label_stats and transaction_features.
-#}
{% macro label_maturity_days() %}
    {{ return(env_var('HEADWATER_LABEL_MATURITY_DAYS', '61') | int) }}
{% endmacro %}
