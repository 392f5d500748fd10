-- ListOpportunities(order_status = 'parked'): the few parked orders without walking the table.
CREATE INDEX opportunities_order_parked ON opportunities (seq) WHERE order_status = 'parked';
