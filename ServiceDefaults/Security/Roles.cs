namespace Crm.ServiceDefaults.Security;

/// <summary>
/// The roles a token carries in its <c>role</c> claim (configurable: Auth:RoleClaim). The member role is
/// the member app acting for one customer: the token's subject is that customer's id.
/// </summary>
public static class Roles
{
    public const string Admin = "admin";
    public const string Marketing = "marketing";
    public const string Sales = "sales";
    /// <summary>Service-desk agent.</summary>
    public const string Service = "service";
    /// <summary>Store till: records orders, validates and uses coupons.</summary>
    public const string Store = "store";
    /// <summary>A partner's ERP: pushes customers, orders and refunds, reads them back.</summary>
    public const string Partner = "partner";
    /// <summary>The member app, for the customer named by the token's subject only.</summary>
    public const string Member = "member";
    /// <summary>A sales manager: what a salesperson does, for every member of the token's team.</summary>
    public const string SalesManager = "sales_manager";
    /// <summary>A service-desk supervisor: reviews agents, works every queue of the token's team.</summary>
    public const string ServiceSupervisor = "service_supervisor";

    /// <summary>Another service of the suite calling on its own behalf (subject: that service's name); see ServiceClients.</summary>
    public const string System = "system";

    public static readonly IReadOnlyList<string> All = [Admin, Marketing, Sales, Service, Store, Partner, Member, SalesManager, ServiceSupervisor, System];
}
