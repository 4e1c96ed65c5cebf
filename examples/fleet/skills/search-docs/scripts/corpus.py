"""The support handbook, one passage per entry: the document set `search` ranks."""

DOCUMENTS = [
    {
        "id": "refunds-window",
        "title": "Refund window",
        "text": "Customers can ask for a refund within 30 days of delivery. After 30 days we offer store "
        "credit instead of a refund. Refunds go back to the original payment method.",
    },
    {
        "id": "refunds-large",
        "title": "Large refunds",
        "text": "A refund above 100 euros needs a second person to approve it before the money is sent. "
        "Refunds above 1000 euros go to the finance team.",
    },
    {
        "id": "shipping-delays",
        "title": "Shipping delays",
        "text": "Parcels usually arrive within 3 to 5 working days. When a parcel is late, check the "
        "tracking page first; after 10 days we send a replacement or refund the order.",
    },
    {
        "id": "damaged-items",
        "title": "Damaged items",
        "text": "If an item arrives broken or damaged, ask for a photo, then send a replacement at no cost. "
        "The customer does not need to return the damaged item.",
    },
    {
        "id": "account-access",
        "title": "Account access",
        "text": "A customer who cannot log in can reset the password from the login page. We never ask "
        "for a password by e-mail or phone.",
    },
    {
        "id": "invoices",
        "title": "Invoices",
        "text": "Invoices are available on the orders page as PDF. A corrected invoice with a new "
        "billing address can be issued within 60 days of the order.",
    },
]
